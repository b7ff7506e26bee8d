import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StallWatch } from '../../src/registry/index.ts';

// A body's bytes are only the server's fault when lading had the chance to read them: a window in
// which this process was busy (a long synchronous step, a GC pause, not scheduled under load) is
// not a window the server failed (the CI flake of "a body left unread for many timeout windows").
test('a window in which the event loop was busy is not blamed on the server', async () => {
  const windowMs = 100;
  let busyEnd = 0;
  const stalled = new Promise<number>((resolve) => {
    new StallWatch(
      windowMs,
      () => 0,
      () => false,
      () => resolve(performance.now()),
    );
  });
  // Busy for three windows: the first tick comes late and must start a new window.
  const start = performance.now();
  while (performance.now() - start < 3 * windowMs) {
    // spin
  }
  busyEnd = performance.now();
  const at = await stalled;
  // The stall is still found (nothing came), but only after a whole window once lading could read.
  assert.ok(at - busyEnd >= windowMs * 0.9, `blamed ${Math.round(at - busyEnd)} ms after the busy stretch`);
});

test('a server that sends nothing while lading reads is still cut after a window', async () => {
  const stalled = await new Promise<number>((resolve) => {
    new StallWatch(
      50,
      () => 0,
      () => false,
      (got) => resolve(got),
    );
  });
  assert.equal(stalled, 0);
});

test('bytes enough in each window keep the body going; a reader behind is excused', async () => {
  let bytes = 0;
  let calls = 0;
  const feed = setInterval(() => {
    bytes += 2048;
  }, 10);
  let excuse = false;
  const result = await new Promise<string>((resolve) => {
    const w = new StallWatch(
      60,
      () => {
        calls++;
        return bytes;
      },
      () => excuse,
      () => resolve('stalled'),
    );
    setTimeout(() => {
      // The server stops; lading is the one behind: excused.
      clearInterval(feed);
      excuse = true;
      setTimeout(() => {
        w.stop();
        resolve('ok');
      }, 250);
    }, 250);
  });
  clearInterval(feed);
  assert.equal(result, 'ok');
  assert.ok(calls > 3);
});
