// A process holding a terminal in raw mode as the VMM does (ui/terminal.ts
// on a main loop), for tests/signals_test.ts: the terminal is the pty slave
// named in Deno.args[0]. Prints "raw" once raw mode is on, then waits.
import { Terminal } from "../../ui/terminal.ts";
import { MainLoop } from "../../mainloop/main_loop.ts";
import { O_NOCTTY, O_RDWR, openFile } from "../../sys/fd.ts";

const fd = openFile(Deno.args[0], O_RDWR | O_NOCTTY);
const loop = new MainLoop();
const term = new Terminal({ loop, fd, onInput: () => {}, onQuit: () => {} });
term.start();
console.log(term.rawMode ? "raw" : "cooked");
await loop.run();
