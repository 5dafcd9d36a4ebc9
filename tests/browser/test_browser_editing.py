"""The page as a spreadsheet: tables, typed columns, formulas, rows and the keyboard."""

from __future__ import annotations

from typing import Any

import pytest
from page_helpers import cell, cell_text, eventually, open_page, row_count, wait_cell

from client_sdk import Client

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def add_column(page: Any, name: str, kind: str, formula: str = "") -> None:
    await page.fill("#col-name", name)
    await page.select_option("#col-type", kind)
    if formula:
        await page.fill("#col-formula", formula)
    await page.click("#col-add")
    await page.locator("#grid-head .hcell", has_text=name).wait_for(timeout=5000)


async def test_a_table_built_and_edited_from_the_keyboard(
    browser: Any, live_hub: Any, team: Any
) -> None:
    _, key = team
    page = await open_page(browser, live_hub.page_url, key)
    await page.locator("#status", has_text="live").wait_for()
    await page.fill("#new-table-name", "Inventory")
    await page.click("#new-table")
    await page.wait_for_url("**/t/*")
    await page.wait_for_function("() => window.hypertab.table?.name === 'Inventory'")
    await page.locator("#table-list a", has_text="Inventory").wait_for()
    table_id = page.url.rsplit("/", 1)[1]

    for name, kind, formula in [
        ("Price", "number", ""),
        ("Qty", "number", ""),
        ("In stock", "boolean", ""),
        ("Arrived", "datetime", ""),
        ("Total", "formula", "{Price} * {Qty}"),
        ("Per nothing", "formula", "{Price} / 0"),
    ]:
        await add_column(page, name, kind, formula)
    # columns: 0 Name, 1 Notes, 2 Price, 3 Qty, 4 In stock, 5 Arrived, 6 Total, 7 Per nothing
    await page.click("#row-add")
    await page.wait_for_function("() => window.hypertab.table.size === 1")
    await cell(page, 0, 0).click()
    await page.keyboard.type("Bolt")
    await page.keyboard.press("Tab")  # commits and moves right
    await page.keyboard.press("Tab")  # skip Notes
    await page.keyboard.type("2.5")
    await page.keyboard.press("Tab")
    await page.keyboard.type("4")
    await page.keyboard.press("Enter")
    await wait_cell(page, 0, 6, "10")  # computed by the server
    await wait_cell(page, 0, 7, "#DIV/0!")
    assert "error" in (await cell(page, 0, 7).get_attribute("class"))

    # A number column refuses text, with a message; nothing is sent.
    await cell(page, 0, 3).click()
    await page.keyboard.type("lots")
    await page.keyboard.press("Enter")
    await page.locator("#message", has_text="not a number").wait_for()
    assert await cell_text(page, 0, 3) == "4"
    # F2 edits in place; Escape cancels.
    await cell(page, 0, 0).click()
    await page.keyboard.press("F2")
    await page.keyboard.type(" nut")
    await page.keyboard.press("Escape")
    assert await cell_text(page, 0, 0) == "Bolt"
    assert await page.locator(".editor").count() == 0
    # Formula cells are read-only to writers.
    await cell(page, 0, 6).click()
    await page.keyboard.type("99")
    assert await page.locator(".editor").count() == 0
    # Boolean: Space toggles (so does a click, as a checkbox); datetime: a date-time editor.
    await cell(page, 0, 3).click()
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press(" ")
    await wait_cell(page, 0, 4, "☑")
    await cell(page, 0, 4).click()
    await wait_cell(page, 0, 4, "☐")
    await page.keyboard.press(" ")
    await wait_cell(page, 0, 4, "☑")
    await cell(page, 0, 5).click()
    await page.keyboard.press("Enter")
    editor = page.locator("input.editor")
    assert await editor.get_attribute("type") == "datetime-local"
    await editor.fill("2024-05-31T14:30")
    await editor.press("Enter")
    await wait_cell(page, 0, 5, "2024-05-31 14:30")  # shown with a space, stored ISO
    # Arrow keys move, Delete clears, Ctrl+Z brings the value back.
    await cell(page, 0, 2).click()
    await page.keyboard.press("ArrowLeft")
    await page.keyboard.press("ArrowLeft")
    assert await page.evaluate("() => window.hypertab.grid.sel.col") == 0
    await page.keyboard.press("Delete")
    await wait_cell(page, 0, 0, "")
    await page.keyboard.press("Control+z")
    await wait_cell(page, 0, 0, "Bolt")

    # Rows: insert below, type, move up, delete.
    await page.click("#row-add")
    await page.wait_for_function("() => window.hypertab.table.size === 2")
    await page.keyboard.type("Nut")
    await page.keyboard.press("Enter")
    await wait_cell(page, 1, 0, "Nut")
    await cell(page, 1, 0).click()
    await page.click("#row-up")
    await wait_cell(page, 0, 0, "Nut")
    await wait_cell(page, 1, 0, "Bolt")
    await cell(page, 0, 0).click()
    await page.click("#row-delete")
    await page.wait_for_function("() => window.hypertab.table.size === 1")
    await wait_cell(page, 0, 0, "Bolt")
    # Undo brings the deleted row back in its place (a new row: deleted rows stay deleted).
    await page.keyboard.press("Control+z")
    await wait_cell(page, 0, 0, "Nut")
    await wait_cell(page, 1, 0, "Bolt")
    await page.keyboard.press("Control+Shift+z")
    await page.wait_for_function("() => window.hypertab.table.size === 1")
    await wait_cell(page, 0, 0, "Bolt")

    # Columns: rename (the formula follows), drop; resize by dragging the header edge.
    await cell(page, 0, 3).click()
    await page.fill("#col-rename", "Count")
    await page.press("#col-rename", "Enter")
    await page.locator("#grid-head .hcell", has_text="{Price} * {Count}").wait_for()
    await cell(page, 0, 1).click()
    await page.click("#col-drop")
    await page.wait_for_function(
        "() => !window.hypertab.table.columns.some((c) => c.name === 'Notes')"
    )
    head = page.locator("#grid-head .hcell[title='Price (number)']")
    box = await head.bounding_box()
    grip = head.locator(".resize")
    grip_box = await grip.bounding_box()
    await page.mouse.move(grip_box["x"] + 3, grip_box["y"] + 5)
    await page.mouse.down()
    await page.mouse.move(grip_box["x"] + 83, grip_box["y"] + 5, steps=4)
    await page.mouse.up()
    wider = await head.bounding_box()
    assert wider["width"] > box["width"] + 60

    async with await Client.connect(live_hub.ws_url, api_key=key) as sdk:
        inventory = await sdk.table(table_id)
        await eventually(lambda: len(inventory.rows) == 1)
        (values,) = inventory.rows.values()
        names = {c.id: c.name for c in inventory.replica.columns.values()}
        by_name = {names[k]: v for k, v in values.items()}
        assert by_name == {
            "Name": "Bolt",
            "Price": 2.5,
            "Count": 4,
            "In stock": True,
            "Arrived": "2024-05-31T14:30",
            "Total": 10,
            "Per nothing": "#DIV/0!",
        }
    assert await row_count(page) == 1
    assert page.errors == []
    await page.context.close()
