"""What a person sees in `mlflow ui`, checked in a real headless Chromium.

The test fills a store with a run and a sweep holding a finished and a failed job, starts
`mlflow ui` on 127.0.0.1 (as `make ui` does), opens the URLs nnlab prints, and asserts what the
pages show. Screenshots go to test-output/ui/ for a person to look at. `make test` installs
Debian's chromium and Playwright for Python; without them this test fails, it never skips.
"""

import shutil

import pytest
from mlflow.tracking import MlflowClient

from nnlab.paths import PROJECT_ROOT
from nnlab.tracking.describe import run_link
from tests.commands import run_cli
from tests.servers import mlflow_server

pytestmark = pytest.mark.slow
SCREENSHOTS = PROJECT_ROOT / "test-output" / "ui"
TINY = ["trainer.max_epochs=3", "data.n_samples=200", "trainer.progress=none"]


@pytest.fixture
def ui(store):
    """`mlflow ui` over the test's store, on 127.0.0.1 and a port it chose; stopped at the end."""
    with mlflow_server("ui", "--backend-store-uri", store) as base:
        yield base


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed (make test installs it)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        yield page
        browser.close()


def fill_store(store):
    """One run (its layers watched), and a sweep with a finished and a diverging (FAILED)
    job."""
    single = run_cli(
        "nnlab-train", *TINY, "tracking.watch=true", "tracking.watch_every=1", check=True
    )
    sweep = run_cli(
        "nnlab-train", "-m", "data=sine", "optimizer=sgd", "optimizer.lr=0.01,1e8", *TINY
    )
    assert sweep.returncode == 0, sweep.stderr
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("nnlab").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("nnlab.sweep") == "true")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return single.stdout + sweep.stdout, parent, children


def test_ui_lands_on_runs_with_the_sweep_nested_and_pages_explain_each_run(store, ui, browser_page):
    printed, parent, children = fill_store(store)
    page = browser_page
    experiment = parent.info.experiment_id
    finished = next(c for c in children if c.info.status == "FINISHED")
    failed = next(c for c in children if c.info.status == "FAILED")

    # Arrival: the runs URL the sweep printed, served by this test's UI, shows the runs table.
    printed_runs_url = next(ln.split()[1] for ln in printed.splitlines() if "  runs  " in ln)
    page.goto(printed_runs_url.replace("http://127.0.0.1:5000", ui))
    page.get_by_text(parent.info.run_name, exact=True).first.wait_for(timeout=60_000)
    # Every top-level row is drawn (the single run's too) before a child's absence means
    # anything: the rows come from one page of results.
    single_name = next(ln for ln in printed.splitlines() if ln.endswith(" finished"))
    single_name = single_name.removeprefix("nnlab: ").removesuffix(" finished")
    page.get_by_text(single_name, exact=True).first.wait_for(timeout=60_000)
    assert page.get_by_text(finished.info.run_name).count() == 0  # nested: hidden
    row = page.locator("[role=row]", has_text=parent.info.run_name).first
    row.locator("button").first.click()  # expand the sweep
    page.get_by_text(finished.info.run_name).first.wait_for(timeout=30_000)
    assert page.get_by_text(failed.info.run_name).count() >= 1
    page.screenshot(path=SCREENSHOTS / "runs_table.png")

    # A child's page: its description (what, result, link to the sweep) and its source.
    page.goto(f"{ui}/{run_link(experiment, finished.info.run_id)}")
    page.get_by_text("Result:").first.wait_for(timeout=60_000)
    body = page.locator("body").inner_text()
    assert "Part of" in body and parent.info.run_name in body
    assert "nnlab-train" in body  # the Source column's entry point
    assert "sine-train" in body  # its training split, as a dataset with a digest
    assert "mlflow.nnlab.pid" not in body and "nnlab.pid" not in body  # bookkeeping hidden
    # Its trained network, listed under "Logged models" and linked to the model's page.
    # (The UI loads that table after the description: wait for the link, fail if it never shows.)
    (model,) = finished.outputs.model_outputs
    link = page.locator(f"a[href*='/experiments/{experiment}/models/{model.model_id}']")
    link.first.wait_for(timeout=60_000)
    assert "Logged models (1)" in page.locator("body").inner_text()
    page.screenshot(path=SCREENSHOTS / "child_run.png", full_page=True)

    # tracking.watch: the single run's Model metrics tab has a section per layer, layers/1 ...,
    # each with its gradient, weight and update norms and its dead share.
    client = MlflowClient(store)
    (watched,) = [r for r in client.search_runs([experiment]) if r.info.run_name == single_name]
    route, _, query = run_link(experiment, watched.info.run_id).partition("?")
    page.goto(f"{ui}/{route}/model-metrics?{query}")
    page.get_by_text("layers/1", exact=False).first.wait_for(timeout=60_000)
    metrics_tab = page.locator("body").inner_text()
    for layer in (1, 2, 3):
        assert f"layers/{layer}" in metrics_tab
    for quantity in ("grad_norm", "weight_norm", "update_ratio", "dead_fraction"):
        assert quantity in metrics_tab
    page.get_by_text("Step").first.wait_for(timeout=60_000)  # the charts have drawn
    page.screenshot(path=SCREENSHOTS / "layer_metrics.png", full_page=True)

    # A failed run's page says where and why it stopped.
    page.goto(f"{ui}/{run_link(experiment, failed.info.run_id)}")
    page.get_by_text("Failed at epoch").first.wait_for(timeout=60_000)
    assert "TrainingDiverged" in page.locator("body").inner_text()
    page.screenshot(path=SCREENSHOTS / "failed_run.png", full_page=True)

    # The charts link: train and val loss of a run on one chart, its test metrics as bars.
    charts_url = next(ln.split()[1] for ln in printed.splitlines() if ln.startswith("  charts "))
    page.goto(charts_url.replace("http://127.0.0.1:5000", ui))
    page.get_by_text("loss: train and val").first.wait_for(timeout=60_000)
    single = next(ln for ln in printed.splitlines() if ln.endswith(" finished"))
    name = single.removeprefix("nnlab: ").removesuffix(" finished")
    page.get_by_text(f"{name} (val/loss)").first.wait_for(timeout=60_000)
    charts = page.locator("body").inner_text()
    assert f"{name} (train/loss)" in charts  # the same chart holds both curves
    assert "test/loss" in charts  # a bar per run
    page.screenshot(path=SCREENSHOTS / "charts.png")

    # The sweep's page: its table of jobs, the best marked, the failed one said so.
    page.goto(f"{ui}/{run_link(experiment, parent.info.run_id)}")
    page.get_by_text("★").first.wait_for(timeout=60_000)
    sweep_page = page.locator("body").inner_text()
    best_line = next(
        ln for ln in sweep_page.splitlines() if "★" in ln and "marks the best" not in ln
    )
    assert "0.01" in best_line and "1e+08" not in best_line  # the finished lr is the best
    assert "FAILED" in sweep_page and "1e+08" in sweep_page  # the diverged job is listed
    page.screenshot(path=SCREENSHOTS / "sweep_parent.png", full_page=True)
