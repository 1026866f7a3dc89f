"""Test-suite start-up: runs before any test module imports a framework."""

from adamp_core._quiet import quiet_tensorflow_without_gpu

quiet_tensorflow_without_gpu()
