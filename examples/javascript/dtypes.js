// Rounding a float64 value to the dtype a parameter is stored in. The port computes in
// float64 (JavaScript numbers) and rounds each parameter after every step, as the reference does.

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

function roundHalfEven(y) {
  const floor = Math.floor(y);
  const rest = y - floor;
  if (rest !== 0.5) return rest < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

// Nearest float16 (11 significant bits, exponents -14..15, subnormals below 2^-14).
function roundFloat16(x) {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity; // halfway above the largest float16, 65504
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1; // Math.log2 may be off by one next to a power of two
  else if (2 ** (e + 1) <= a) e += 1;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp;
}

// Nearest bfloat16 through float32 (as frameworks convert): keep the top 16 bits, ties to even.
function roundBfloat16(x) {
  f32[0] = x;
  if (!Number.isFinite(f32[0])) return f32[0];
  const bits = f32Bits[0];
  f32Bits[0] = (bits + 0x7fff + ((bits >>> 16) & 1)) & 0xffff0000;
  return f32[0];
}

const ROUNDERS = {
  float64: (x) => x,
  float32: Math.fround,
  float16: roundFloat16,
  bfloat16: roundBfloat16,
};

export function rounder(dtype) {
  const round = ROUNDERS[dtype];
  if (!round) throw new RangeError(`dtype must be one of ${Object.keys(ROUNDERS).join(", ")}, got ${dtype}`);
  return round;
}
