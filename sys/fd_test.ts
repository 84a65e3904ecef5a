import assert from "node:assert/strict";
import { closeFd, eventFd, eventFdDrain, eventFdRead, eventFdWrite } from "./fd.ts";

Deno.test("eventfd counter: write adds, read returns and clears, drain clears without a value", () => {
  const fd = eventFd();
  try {
    assert.equal(eventFdRead(fd), 0n, "a fresh counter reads as clear");
    eventFdWrite(fd);
    eventFdWrite(fd, 41n);
    assert.equal(eventFdRead(fd), 42n);
    assert.equal(eventFdRead(fd), 0n, "read cleared it");
    assert.equal(eventFdDrain(fd), false);
    eventFdWrite(fd, 0x1_0000_0001n); // both 32-bit halves in use
    assert.equal(eventFdDrain(fd), true);
    assert.equal(eventFdDrain(fd), false, "drain cleared it");
  } finally {
    closeFd(fd);
  }
});
