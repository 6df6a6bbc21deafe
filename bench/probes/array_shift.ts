/**
 * Probe: the cost of `Array.prototype.shift()` by queue length. V8 shifts small arrays in place cheaply but copies
 * large ones, so draining a queue of n items with `shift()` costs O(n²) once n is in the tens of thousands: the
 * shape of a socket's outgoing queue during the chat flood (docs/benchmarks.md).
 *
 * Usage: `deno run bench/probes/array_shift.ts`
 *
 * @module
 */
for (const n of [1_000, 10_000, 50_000, 200_000]) {
  const queue: string[] = Array.from({ length: n }, (_, i) => `frame ${i}`);
  const start = performance.now();
  while (queue.length > 0) queue.shift();
  const perShift = (performance.now() - start) * 1000 / n;
  console.log(`${String(n).padStart(7)} items: ${perShift.toFixed(3)} µs per shift()`);
}
