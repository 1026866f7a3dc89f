#!/usr/bin/env node
// Runs exported conformance cases through the port and writes results for the grader:
//   adamp-conformance export cases/
//   node run_cases.js cases/ results/ [--case ID ...]
//   adamp-conformance grade --cases cases/ --results results/
// File formats: docs/porting.md.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AdamP, SGDP } from "./adamp.js";
import { rounder } from "./dtypes.js";

const OPTIMIZERS = { adamp: AdamP, sgdp: SGDP };

// An array reference { offset (bytes), shape } into a float64 little-endian data file.
function readArray(blob, { offset, shape }) {
  const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
  for (let k = 0; k < values.length; k++) values[k] = blob.readDoubleLE(offset + 8 * k);
  return values;
}

// Collects arrays into one data file; `add` returns the reference to write in the JSON.
class ArrayWriter {
  chunks = [];
  size = 0;

  add(arrays, shape) {
    const buffer = Buffer.alloc(8 * arrays.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const array of arrays) for (const x of array) at = buffer.writeDoubleLE(x, at);
    const ref = { offset: this.size, shape };
    this.chunks.push(buffer);
    this.size += buffer.length;
    return ref;
  }
}

function runCase(spec, blob) {
  const params = spec.params.map((p) => ({ data: readArray(blob, p.initial), shape: p.shape, group: p.group }));
  const optimizer = new OPTIMIZERS[spec.optimizer](params, spec.groups, {
    channelAxis: spec.channel_axis,
    round: rounder(spec.dtype),
  });
  const grads = spec.params.map((p) => readArray(blob, p.grads));
  const trace = params.map(() => ({ values: [], state: [], branch: [] }));
  try {
    for (let t = 0; t < spec.steps; t++) {
      optimizer.step(
        spec.params.map((p, i) => {
          const size = params[i].data.length;
          return p.grad_present[t] ? grads[i].subarray(t * size, (t + 1) * size) : null;
        }),
      );
      params.forEach((p, i) => {
        trace[i].values.push(p.data.slice());
        trace[i].state.push(structuredClone(optimizer.state[i]));
        trace[i].branch.push(optimizer.branches[i]);
      });
    }
  } catch (e) {
    return { trace, error: `${e.name}: ${e.message}` }; // the steps so far are still graded
  }
  return { trace, error: "" };
}

function resultDocument(spec, trace, error) {
  const writer = new ArrayWriter();
  const params = spec.params.map((p, i) => {
    const { values, state, branch } = trace[i];
    const shape = [values.length, ...p.shape];
    const fields = Object.keys(state[0] ?? {}).filter((key) => key !== "step");
    const entry = {
      name: p.name,
      values: writer.add(values, shape),
      state: Object.fromEntries(fields.map((key) => [key, writer.add(state.map((s) => s[key]), shape)])),
      branch,
    };
    if (spec.optimizer === "adamp") entry.state.step = state.map((s) => s.step);
    return entry;
  });
  const doc = { format: "adamp-conformance-result", format_version: 1, id: spec.id, status: "ran" };
  if (error) doc.error = error;
  return [{ ...doc, data: `${spec.id}.bin`, params }, Buffer.concat(writer.chunks)];
}

function main([casesDir, resultsDir, ...rest]) {
  if (!casesDir || !resultsDir) {
    console.error("usage: node run_cases.js CASES_DIR RESULTS_DIR [--case ID ...]");
    return 2;
  }
  const wanted = rest.filter((_, i) => rest[i - 1] === "--case");
  const index = JSON.parse(readFileSync(join(casesDir, "index.json"), "utf8"));
  mkdirSync(resultsDir, { recursive: true });
  const implementation = {
    format: "adamp-conformance-implementation",
    format_version: 1,
    name: "adamp-js-example",
    description: "examples/javascript: AdamP and SGDP on Float64Arrays",
    versions: { node: process.versions.node },
  };
  writeFileSync(join(resultsDir, "implementation.json"), JSON.stringify(implementation, null, 1));
  let count = 0;
  for (const entry of index.cases) {
    const spec = JSON.parse(readFileSync(join(casesDir, entry.file), "utf8"));
    if (wanted.length && !wanted.includes(spec.id) && !wanted.includes(spec.case_id)) continue;
    const { trace, error } = runCase(spec, readFileSync(join(casesDir, spec.data)));
    const [doc, data] = resultDocument(spec, trace, error);
    writeFileSync(join(resultsDir, `${spec.id}.json`), JSON.stringify(doc, null, 1));
    writeFileSync(join(resultsDir, doc.data), data);
    count++;
  }
  console.log(`ran ${count} cases, results in ${resultsDir}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
