"""Several people and a program on one table: live edits, presence, paste and undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from page_helpers import (
    cell,
    cell_text,
    eventually,
    open_page,
    row_count,
    scroll_to,
    type_into,
    wait_cell,
    wait_value,
)

from client_sdk import Client

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_two_pages_and_the_sdk_converge(
    browser: Any, live_hub: Any, team: Any, artifacts: Path
) -> None:
    _, key = team
    sdk = await Client.connect(live_hub.ws_url, api_key=key)
    try:
        people = await sdk.create_table(
            "People", [("Name", "text"), ("Age", "number"), ("Member", "boolean")]
        )
        ada = await people.insert({"Name": "Ada", "Age": 36})
        await people.insert({"Name": "Grace", "Age": 45})
        alice = await open_page(browser, live_hub.page_url, key, people.id, name="Alice")
        bob = await open_page(browser, live_hub.page_url, key, people.id, name="Bob")
        assert "#" not in alice.url, "the credential left the address bar"
        assert await cell_text(alice, 0, 0) == "Ada"

        # A cell typed in one page appears in the other without a reload, and in the SDK.
        await type_into(alice, 1, 1, "46")
        await wait_cell(bob, 1, 1, "46")
        grace = people.ordered_rows()[1].id
        await eventually(lambda: people.rows[grace].get("Age") == 46)

        # The other way round, and a boolean toggled with the checkbox cell.
        await type_into(bob, 0, 0, "Ada Lovelace")
        await wait_cell(alice, 0, 0, "Ada Lovelace")
        await cell(bob, 0, 2).click()
        await wait_cell(alice, 0, 2, "☑")
        await eventually(lambda: people.rows[ada].get("Member") is True)

        # The program's edits appear in both pages as they commit.
        await people.update(ada, {"Age": 37})
        await people.insert({"Name": "Linus", "Age": 28})
        for page in (alice, bob):
            await wait_cell(page, 0, 1, "37")
            await wait_cell(page, 2, 0, "Linus")

        # Presence: each page shows where the other one is, outlined with its name.
        await cell(alice, 2, 1).click()
        peer = bob.locator("#grid-overlay .peer .tag", has_text="Alice")
        await peer.wait_for(timeout=5000)
        await bob.locator("#people .person", has_text="Alice").wait_for(timeout=5000)
        await cell(bob, 1, 0).click()
        await alice.locator("#grid-overlay .peer .tag", has_text="Bob").wait_for(timeout=5000)

        # All three replicas hold the same rows.
        expected = [
            [str(r.values.get(c, "")) for c in ("Name", "Age")] for r in people.ordered_rows()
        ]
        for page in (alice, bob):
            shown = [[await cell_text(page, r, c) for c in (0, 1)] for r in range(3)]
            assert shown == expected
        shot = artifacts / "browser-multi-user.png"
        await bob.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        assert alice.errors == [] and bob.errors == []
        for page in (alice, bob):
            await page.context.close()
    finally:
        await sdk.close()


async def test_paste_lands_as_one_batch_and_undo_removes_it(
    browser: Any, live_hub: Any, team: Any
) -> None:
    _, key = team
    sdk = await Client.connect(live_hub.ws_url, api_key=key)
    try:
        columns = [(f"C{i}", "number" if i == 4 else "text") for i in range(5)]
        grid = await sdk.create_table("Paste", columns)
        await grid.insert({"C0": "header"})
        clipboard = ["clipboard-read", "clipboard-write"]
        a = await open_page(browser, live_hub.page_url, key, grid.id, permissions=clipboard)
        b = await open_page(browser, live_hub.page_url, key, grid.id)
        before = grid.version
        block = "\n".join(
            "\t".join([f"r{r}c{c}" for c in range(4)] + [str(r * 10)]) for r in range(100)
        )
        # Copied in another spreadsheet (text/plain TSV on the system clipboard), pasted here.
        await a.evaluate("(text) => navigator.clipboard.writeText(text)", block)
        await cell(a, 0, 0).click()
        await a.keyboard.press("Control+v")
        await eventually(lambda: len(grid.rows) == 100)
        assert grid.version == before + 1, "the paste was not one batch"
        await eventually(lambda: grid.ordered_rows()[99].values.get("C4") == 990)
        await wait_value(b, 99, 4, "990")
        await wait_cell(b, 0, 0, "r0c0")  # the first row was overwritten, 99 were added
        assert await row_count(b) == 100
        await scroll_to(b, 99)
        await wait_cell(b, 99, 4, "990")
        await scroll_to(b, 0)

        await a.locator("#grid").press("Control+z")
        await eventually(lambda: len(grid.rows) == 1)
        assert grid.version == before + 2, "undo was not one batch"
        await wait_cell(b, 0, 0, "header")
        assert await row_count(b) == 1
        await a.locator("#grid").press("Control+Shift+z")
        await eventually(lambda: len(grid.rows) == 100)
        await wait_value(b, 99, 4, "990")

        # Copy gives the block back as TSV, as another spreadsheet expects it.
        await cell(a, 0, 0).click()
        await cell(a, 1, 4).click(modifiers=["Shift"])
        await a.keyboard.press("Control+c")
        copied = await a.evaluate("() => navigator.clipboard.readText()")
        assert copied == "r0c0\tr0c1\tr0c2\tr0c3\t0\nr1c0\tr1c1\tr1c2\tr1c3\t10"
        for page in (a, b):
            await page.context.close()
    finally:
        await sdk.close()


async def test_paste_into_an_empty_table_adds_the_rows(
    browser: Any, live_hub: Any, team: Any
) -> None:
    _, key = team
    async with await Client.connect(live_hub.ws_url, api_key=key) as sdk:
        empty = await sdk.create_table("Empty", [("Name", "text"), ("Qty", "number")])
        context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = await context.new_page()
        await page.goto(f"{live_hub.page_url}/t/{empty.id}#key={key}")
        await page.wait_for_function("() => window.hypertab.table?.live")
        await page.evaluate("() => navigator.clipboard.writeText('bolt\\t3\\nnut\\t5\\r\\n')")
        await page.locator("#grid-body").click()
        await page.keyboard.press("Control+v")
        await eventually(lambda: len(empty.rows) == 2)
        assert [r.values for r in empty.ordered_rows()] == [
            {"Name": "bolt", "Qty": 3},
            {"Name": "nut", "Qty": 5},
        ]
        await wait_cell(page, 1, 1, "5")
        await context.close()
