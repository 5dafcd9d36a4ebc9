"""The page rides out a server restart, and a large table stays virtualised."""

from __future__ import annotations

from typing import Any

import pytest
from page_helpers import (
    cell,
    cell_text,
    eventually,
    open_page,
    row_count,
    status,
    wait_cell,
)

from client_sdk import Client
from protocol.ops import InsertRows, NewRow

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_page_survives_a_server_restart(browser: Any, live_hub: Any, team: Any) -> None:
    _, key = team
    sdk = await Client.connect(live_hub.ws_url, api_key=key)
    table = await sdk.create_table("Restart", [("Name", "text"), ("Qty", "number")])
    row = await table.insert({"Name": "widget", "Qty": 1})
    await sdk.close()
    page = await open_page(browser, live_hub.page_url, key, table.id)
    assert await status(page) == "live"

    await live_hub.stop()
    await page.locator("#status", has_text="reconnecting…").wait_for(timeout=5000)
    # Typed while the server is down: shown at once (pending), sent when it is back.
    await cell(page, 0, 1).click()
    await page.keyboard.type("7")
    await page.keyboard.press("Enter")
    await wait_cell(page, 0, 1, "7")
    assert await page.evaluate("() => window.hypertab.client.unacknowledged.length") == 1

    await live_hub.start()
    # Reconnect backoff is capped at 5 s; a loaded CI machine adds seconds to the handshake.
    try:
        await page.locator("#status", has_text="live").wait_for(timeout=20000)
    except Exception as exc:
        seen = await page.evaluate(
            "() => ({status: window.hypertab.client.status,"
            " attempt: window.hypertab.client._attempt,"
            " shown: document.querySelector('#status').textContent})"
        )
        raise AssertionError(f"the page did not come back live: {seen}") from exc
    await page.wait_for_function("() => window.hypertab.client.unacknowledged.length === 0")
    async with await Client.connect(live_hub.ws_url, api_key=key) as again:
        followed = await again.table(table.id)
        await eventually(lambda: followed.rows[row].get("Qty") == 7)
        # Exactly once: create (1), insert (2), the offline edit (3), nothing more.
        await again.ping()
        assert followed.version == 3
        # And the resumed page is live again for others' edits.
        await followed.update(row, {"Name": "gadget"})
        await wait_cell(page, 0, 0, "gadget")
    assert page.errors == []
    await page.context.close()


async def test_large_table_is_virtualised(browser: Any, live_hub: Any, team: Any) -> None:
    _, key = team
    async with await Client.connect(live_hub.ws_url, api_key=key) as sdk:
        big = await sdk.create_table("Big", [("N", "number"), ("Label", "text")])
        for start in range(0, 20_000, 1000):
            rows = [
                NewRow(values={"N": i, "Label": f"row {i}"}) for i in range(start, start + 1000)
            ]
            await sdk.apply(big.id, [InsertRows(rows=rows)])
        page = await open_page(browser, live_hub.page_url, key, big.id)
        assert await row_count(page) == 20_000
        drawn = await page.locator("#grid-rows .row:not([hidden])").count()
        assert drawn < 100, f"{drawn} rows in the DOM for 20,000"
        await cell(page, 0, 0).click()
        for _ in range(3):
            await page.keyboard.press("PageDown")
        selected = await page.evaluate("() => window.hypertab.grid.sel.row")
        assert selected > 40
        assert await cell_text(page, selected, 1) == f"row {selected}"
        await page.keyboard.press("Control+End")  # to the last row, drawn once scrolled there
        await wait_cell(page, 19_999, 1, "row 19999")
        assert await page.locator("#grid-rows .row:not([hidden])").count() < 100
        await page.context.close()
