// Pure parts of the JavaScript client and the grid, by plain function calls (no hub).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Pacer, HypertabError, newId } from "../../../server/web/static/hypertab.mjs";
import { parseTsv, toTsv, parseInput, cellText } from "../../../server/web/static/grid.mjs";

test("the pacer holds the message past the burst window", () => {
  const pacer = new Pacer();
  pacer.reset(0, 20); // keeps one message of headroom for arrival jitter
  for (let i = 0; i < 19; i++) {
    assert.equal(pacer.delay(0, 1000 + i), 0);
    pacer.record(0, 1000 + i);
  }
  const wait = pacer.delay(0, 1019);
  assert.ok(wait > 980 && wait <= 1100, `waited ${wait}`); // a second, plus a margin
  assert.equal(pacer.delay(0, 1019 + wait), 0);
});

test("the pacer counts ops per minute and lets a batch through when the window frees", () => {
  const pacer = new Pacer(100, 0);
  pacer.record(60, 0);
  pacer.record(40, 10_000);
  assert.ok(pacer.delay(1, 20_000) > 39_000);
  assert.equal(pacer.delay(50, 60_200), 0); // the first 60 left the window
  assert.ok(pacer.delay(61, 60_200) > 9000);
  assert.equal(pacer.delay(5, 70_200), 0);
});

test("TSV from spreadsheets: quotes, tabs and newlines inside cells, CRLF, trailing newline", () => {
  const text = 'a\t"b\tc"\t"line1\nline2"\r\n"say ""hi"""\t\t3\r\n';
  assert.deepEqual(parseTsv(text), [
    ["a", "b\tc", "line1\nline2"],
    ['say "hi"', "", "3"],
  ]);
  const rows = [
    ["x", "tab\there", 'q"uote'],
    ["", "multi\nline", "7"],
  ];
  assert.deepEqual(parseTsv(toTsv(rows)), rows);
  assert.deepEqual(parseTsv(""), []);
  assert.deepEqual(parseTsv("only"), [["only"]]);
});

test("typed input: numbers, booleans, datetimes, json, empty clears", () => {
  assert.equal(parseInput("1,234.5", "number"), 1234.5);
  assert.throws(() => parseInput("lots", "number"), /not a number/);
  assert.throws(() => parseInput("1e999", "number"), /not a number/);
  assert.equal(parseInput("TRUE", "boolean"), true);
  assert.equal(parseInput("no", "boolean"), false);
  assert.throws(() => parseInput("maybe", "boolean"), /TRUE or FALSE/);
  assert.equal(parseInput("2024-05-31 14:30", "datetime"), "2024-05-31T14:30");
  assert.throws(() => parseInput("31/05/2024", "datetime"), /ISO-8601/);
  assert.deepEqual(parseInput('{"a": [1]}', "json"), { a: [1] });
  assert.equal(parseInput("not json", "json"), "not json");
  assert.equal(parseInput("", "number"), null);
  assert.equal(parseInput("", "text"), null);
  assert.equal(parseInput("  spaced ", "text"), "  spaced ");
});

test("cell text is the value as text, never markup", () => {
  assert.equal(cellText("<img src=x onerror=alert(1)>", "text"), "<img src=x onerror=alert(1)>");
  assert.equal(cellText(true, "boolean"), "☑");
  assert.equal(cellText(null, "number"), "");
  assert.equal(cellText({ a: 1 }, "json"), '{"a":1}');
  assert.equal(cellText("2024-05-31T14:30:00", "datetime"), "2024-05-31 14:30:00");
});

test("errors carry the wire code and whether to retry", () => {
  const err = new HypertabError("rate_limited", "slow down", { retry_after_ms: 250 });
  assert.equal(err.code, "rate_limited");
  assert.equal(err.temporary, true);
  assert.equal(err.retryAfterMs, 250);
  assert.equal(new HypertabError("type_mismatch", "no", { op_index: 3 }).opIndex, 3);
  assert.equal(new HypertabError("type_mismatch", "no").temporary, false);
  assert.match(newId(), /^[A-Za-z0-9]{16}$/);
});
