// JWT sessions refresh in band (`auth`) before `exp`: the connection outlives its first
// token. HYPERTAB_URL, HYPERTAB_JWT_SECRET and HYPERTAB_TENANT come from the environment.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { test } from "node:test";

import { connect } from "../../../server/web/static/hypertab.mjs";

const b64 = (data) => Buffer.from(data).toString("base64url");

function mint(lifetimeS) {
  const now = Date.now() / 1000;
  const header = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64(
    JSON.stringify({
      sub: "user-7",
      aud: "authenticated",
      role: "authenticated",
      iat: Math.floor(now),
      exp: now + lifetimeS,
      app_metadata: { tenant: process.env.HYPERTAB_TENANT },
    }),
  );
  const mac = createHmac("sha256", process.env.HYPERTAB_JWT_SECRET);
  return `${header}.${payload}.${mac.update(`${header}.${payload}`).digest("base64url")}`;
}

test("a JWT session outlives its first token by refreshing in band", async () => {
  let minted = 0;
  const client = connect(process.env.HYPERTAB_URL, {
    tokenProvider: async () => {
      minted += 1;
      return mint(1.5);
    },
  });
  await client.ready();
  const firstExpiry = client.welcome.expires_at;
  await new Promise((r) => setTimeout(r, 2500)); // past the first token's exp
  assert.equal(client.status, "open");
  assert.equal(client.connections, 1, "no reconnect: the same connection lives on");
  assert.ok(minted >= 2, `minted ${minted}`);
  await client.ping();
  assert.ok(Date.now() / 1000 > firstExpiry);
  client.close();
});
