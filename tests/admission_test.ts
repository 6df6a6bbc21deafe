/** Unit tests of input backpressure (`lib/realtime/admission.ts`): no server, no network. */
import assert from "node:assert/strict";
import { Admission, MAX_IN_FLIGHT } from "../lib/realtime/admission.ts";

/** Lets promise callbacks that are due run. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Admits until MAX_IN_FLIGHT are in flight; fails if any of them had to wait. */
function fill(a: Admission): void {
  for (let i = 0; i < MAX_IN_FLIGHT; i++) assert.equal(a.admit(), undefined, `admission ${i} is immediate`);
}

/** Queues a waiter that records its name when it resumes and, like a handler, calls resumed() at once. */
function wait(a: Admission, name: string, order: string[]): Promise<void> {
  const p = a.admit();
  assert.ok(p instanceof Promise, `${name} waits`);
  return p.then(() => {
    a.resumed();
    order.push(name);
  });
}

Deno.test("Admission admits up to MAX_IN_FLIGHT at once, then queues in arrival order and releases one per done()", async () => {
  const a = new Admission(Infinity);
  fill(a);
  assert.deepEqual(a.counts, { inFlight: MAX_IN_FLIGHT, waiting: 0 });
  const order: string[] = [];
  const waiters = ["first", "second", "third"].map((name) => wait(a, name, order));
  assert.deepEqual(a.counts, { inFlight: MAX_IN_FLIGHT, waiting: 3 });
  await tick();
  assert.deepEqual(order, [], "nobody is released before a slot frees");
  a.done();
  await tick();
  assert.deepEqual(order, ["first"]);
  assert.deepEqual(a.counts, { inFlight: MAX_IN_FLIGHT, waiting: 2 }, "the freed slot went to the waiter");
  a.done();
  a.done();
  await Promise.all(waiters);
  assert.deepEqual(order, ["first", "second", "third"]);
  assert.deepEqual(a.counts, { inFlight: MAX_IN_FLIGHT, waiting: 0 });
  a.done();
  assert.equal(a.admit(), undefined, "with nobody waiting a free slot is taken at once");
});

Deno.test("Admission holds back while queued bytes reach the budget and releases when adjustQueued goes down", async () => {
  const a = new Admission(1000);
  a.adjustQueued(999);
  assert.equal(a.admit(), undefined, "below the budget");
  a.done();
  a.adjustQueued(1);
  const order: string[] = [];
  const waiters = ["first", "second"].map((name) => wait(a, name, order));
  a.adjustQueued(500);
  await tick();
  assert.deepEqual(order, [], "more bytes queued release nobody");
  a.adjustQueued(-400);
  await tick();
  assert.deepEqual(order, [], "still at 1100 ≥ 1000 bytes");
  a.adjustQueued(-101);
  await Promise.all(waiters);
  assert.deepEqual(order, ["first", "second"], "every waiter goes once the queues are under the budget");
  assert.deepEqual(a.counts, { inFlight: 2, waiting: 0 });
  a.done();
  a.done();
});

Deno.test("Admission queues new arrivals behind a released waiter until it called resumed()", async () => {
  const a = new Admission(Infinity);
  fill(a);
  const released = a.admit();
  assert.ok(released instanceof Promise);
  a.done(); // its slot goes to the waiter
  a.done(); // and one slot is free
  assert.deepEqual(a.counts, { inFlight: MAX_IN_FLIGHT - 1, waiting: 0 });
  // A frame arriving now must not overtake the released one, which has not run yet.
  const late = a.admit();
  assert.ok(late instanceof Promise, "a free slot is not taken while a released waiter has not resumed");
  await released;
  a.resumed();
  // The late one goes at the next release point: the released waiter's own done().
  a.done();
  await late;
  a.resumed();
  assert.deepEqual(a.counts, { inFlight: MAX_IN_FLIGHT - 1, waiting: 0 });
  assert.equal(a.admit(), undefined, "once every waiter resumed, a free slot is taken at once");
});
