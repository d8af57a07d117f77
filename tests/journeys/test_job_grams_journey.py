"""The filament a print uses, on the card of a phone (issue 17): the grams go up while it prints, and the card keeps
the job's result when it ends.

The simulator prints a job whose 3MF (its own, with the planned grams per filament) it serves over FTPS; the service
fetches it when the job starts. A person sees "Filament <used> of <planned>" with a swatch per filament, the used
grams rising with the layers, and at the end all of what was planned; a failed print keeps the share it printed.
"""

from __future__ import annotations

from pathlib import Path

from tests.journeys.harness import PRINTER, Journey, journey

WAIT = 60  # bounds a hang only


def grams(j: Journey, field: str) -> str:
    """A JS expression: the grams a field of the card shows, as a number (NaN while it is not there)."""
    return f"parseFloat({j.card(f'[data-field={field}]')}?.textContent ?? 'NaN')"


async def test_a_print_shows_live_grams_going_up_and_then_its_end_result(tmp_path: Path) -> None:
    async with journey(tmp_path, ftps=True, time_scale=60) as j:
        page = await j.phone()
        await page.navigate(j.base + "/")
        await page.wait_for(j.card() + " != null", WAIT)
        j.sim.printer.start_print("phone_stand", layers=60, minutes=40)
        await page.wait_for(f"{grams(j, 'grams-planned')} > 0", WAIT)
        planned = await page.evaluate(grams(j, "grams-planned"))
        swatches = await page.evaluate(j.card(".grams") + ".querySelectorAll('.swatch').length")
        assert swatches >= 1
        seen: list[float] = []
        while len(set(seen)) < 4:  # the grams rise while the layers go by
            last = seen[-1] if seen else -1
            value = await page.wait_for(
                f"(() => {{ const g = {grams(j, 'grams-used')}; return g > {last} ? g : null; }})()", WAIT
            )
            seen.append(float(value))
            assert value <= planned
        assert seen == sorted(seen)
        # Phone-sized: the grams line fits the card (nothing runs off the screen).
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        await page.wait_for(j.card("[data-field=state]") + "?.textContent.includes('Finished')", WAIT)
        await page.wait_for(f"{grams(j, 'grams-used')} === {planned}", WAIT)  # all of it, on finish
        assert j.running is not None
        info = j.running.hub.printer(PRINTER)["job_file"]
        assert info is not None and info["used_g"] == info["planned_g"]
        await page.screenshot(tmp_path / "grams-finished.png")

        # The next print fails half way: the card keeps the share it printed.
        j.sim.printer.start_print("bracket", layers=40, minutes=40)
        await page.wait_for(
            f"{j.card('.grams')}?.textContent.includes('Filament') && {grams(j, 'grams-planned')} > 0"
            f" && {grams(j, 'grams-used')} < {grams(j, 'grams-planned')}", WAIT)  # fmt: skip
        await page.wait_for(f"{grams(j, 'grams-used')} > 0", WAIT)
        j.sim.printer.fail()
        await page.wait_for(j.card("[data-field=state]") + "?.textContent.includes('Failed')", WAIT)
        used = await page.evaluate(grams(j, "grams-used"))
        bracket = await page.evaluate(grams(j, "grams-planned"))
        assert 0 < used < bracket
