// The JavaScript client against a real hub (started by tests/browser/test_js_client.py):
// HYPERTAB_URL and HYPERTAB_KEY come from the environment; Node's own WebSocket.
import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, HypertabError } from "../../../server/web/static/hypertab.mjs";

const url = process.env.HYPERTAB_URL;
const key = process.env.HYPERTAB_KEY;

async function open() {
  const client = connect(url, { token: key });
  await client.ready();
  return client;
}

test("refuses a URL carrying a query string (credentials never go in URLs)", () => {
  assert.throws(() => connect(`${url}?token=${key}`, { token: key }), HypertabError);
});

test("edits made in one tick travel as one batch; the other client follows", async () => {
  const a = await open();
  const b = await open();
  try {
    const table = await a.createTable("Tick", [
      { name: "Name", type: "text" },
      { name: "Qty", type: "number" },
    ]);
    const follower = await b.table(table.id);
    const before = table.version;
    const ids = [];
    const inserts = [];
    for (let i = 0; i < 300; i++) inserts.push(table.insert({ Name: `r${i}`, Qty: i }));
    assert.equal(table.size, 0, "staged in the same tick, not yet flushed");
    await Promise.resolve();
    assert.equal(table.size, 300, "optimistic rows are shown before the ack");
    ids.push(...(await Promise.all(inserts)));
    assert.equal(table.version, before + 1);
    assert.equal(
      table.rows().every((r) => !r.pending),
      true,
    );
    await waitFor(() => follower.version === table.version);
    assert.deepEqual(
      follower.rows().map((r) => follower.get(r.id, table.column("Qty").id)),
      Array.from({ length: 300 }, (_, i) => i),
    );
    // update() by column name; the replica reads by column id
    await table.update(ids[0], { Qty: 1000 });
    await waitFor(() => follower.get(ids[0], table.column("Qty").id) === 1000);
    // A server-side query, paged, without subscribing.
    const qty = table.column("Qty").id;
    const big = await b.queryAll("Tick", {
      where: { op: "ge", column: "Qty", value: 290 },
      limit: 4,
    });
    const found = big.map((r) => r.values[qty]).sort((x, y) => x - y);
    assert.deepEqual(found, [290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 1000]);
  } finally {
    a.close();
    b.close();
  }
});

test("a refused batch rejects with the wire code and the optimistic value is withdrawn", async () => {
  const client = await open();
  try {
    const table = await client.createTable("Typed", [{ name: "Qty", type: "number" }]);
    const row = await table.insert({ Qty: 1 });
    const qty = table.column("Qty").id;
    const rejected = [];
    table.on("rejected", ({ error }) => rejected.push(error.code));
    const pending = table.update(row, { Qty: "lots" });
    await Promise.resolve();
    assert.equal(table.get(row, qty), "lots");
    assert.equal(table.isPending(row, qty), true);
    await assert.rejects(
      pending,
      (err) => err instanceof HypertabError && err.code === "type_mismatch" && err.opIndex === 0,
    );
    assert.equal(table.get(row, qty), 1);
    assert.equal(table.isPending(row, qty), false);
    assert.deepEqual(rejected, ["type_mismatch"]);
    await assert.rejects(client.table("no such table"), (err) => err.code === "unknown_table");
  } finally {
    client.close();
  }
});

test("paces itself to welcome.limits: a burst of requests is never rate limited", async () => {
  const client = await open();
  const limited = [];
  client.on("ratelimited", (e) => limited.push(e));
  try {
    const burst = client.welcome.limits.burst_per_second;
    assert.ok(burst > 0);
    const started = performance.now();
    await Promise.all(Array.from({ length: burst * 2 }, () => client.ping()));
    assert.ok(performance.now() - started >= 900, "the pacer spread the burst over a second");
    assert.deepEqual(limited, []);
  } finally {
    client.close();
  }
});

test("presence reaches the other subscriber, and leaving is announced", async () => {
  const a = await open();
  const b = await open();
  try {
    const ta = await a.createTable("Here", [{ name: "Name", type: "text" }]);
    const tb = await b.table(ta.id);
    ta.setPresence({ name: "Ann", row: "r1", col: "c1" });
    await waitFor(() => tb.presence.size === 1);
    const [peer] = tb.presence.values();
    assert.equal(peer.state.name, "Ann");
    a.close();
    await waitFor(() => tb.presence.size === 0);
  } finally {
    b.close();
  }
});

async function waitFor(check, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
