import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import type { CliIo } from './io.ts';

/** Asks a question on stderr and reads a line from stdin. */
export function prompt(io: CliIo, question: string): Promise<string> {
  const rl = createInterface({ input: io.stdin, output: io.err, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      resolve(answer);
    });
  });
}

/** Like {@link prompt} but the typed text is not echoed. */
export function promptHidden(io: CliIo, question: string): Promise<string> {
  let muted = false;
  const out = io.err as Writable & { write: (chunk: string) => boolean };
  const rl = createInterface({
    input: io.stdin,
    output: {
      write: (chunk: string) => (muted ? true : out.write(chunk)),
      on: () => undefined,
      once: () => undefined,
      removeListener: () => undefined,
    } as unknown as Writable,
    terminal: true,
  });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      out.write('\n');
      resolve(answer);
    });
    muted = true;
  });
}
