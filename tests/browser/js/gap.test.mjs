// The JavaScript client against a scripted peer (tests/fake_peer.py SkipsAVersion, started
// by tests/browser/test_js_client.py): a change that skips versions must make the client
// resubscribe from its version, not apply it and lose the versions between.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect } from "../../../server/web/static/hypertab.mjs";

async function waitFor(check, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("a change that skips versions resubscribes and loses nothing", async () => {
  const client = connect(process.env.HYPERTAB_URL, { token: "ht_live_x_y" });
  await client.ready();
  try {
    const table = await client.table("Log");
    await waitFor(() => table.version === 3 && table.live);
    assert.deepEqual(
      table.rows().map((r) => [r.id, table.get(r.id, "n")]),
      [
        ["r2", 2],
        ["r3", 3],
      ],
    );
  } finally {
    client.close();
  }
});
