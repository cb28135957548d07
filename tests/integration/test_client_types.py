"""The browser client is typed: its JSDoc passes TypeScript's strict checks, tocsin.d.ts is
what that JSDoc generates, a TypeScript application compiles against it alone, and tocsin
serves it. TypeScript is the version pinned in tests/js/package-lock.json."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[2]
PROJECT = ROOT / "tests" / "js"
CLIENT = ROOT / "service" / "tocsin" / "client"
TSC = PROJECT / "node_modules" / ".bin" / "tsc"


@pytest.fixture(scope="module")
def tsc() -> Iterator[Path]:
    """TypeScript's compiler, installed from the lock file if it is not yet."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("node and npm are not installed (CI installs them; npm ci in tests/js)")
    if not TSC.exists():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    yield TSC


def compile_with(tsc: Path, *args: str) -> None:
    done = subprocess.run(
        [str(tsc), *args], cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_client_passes_strict_checks(tsc: Path) -> None:
    compile_with(tsc, "--checkJs", "--noEmit", "-p", "tsconfig.json")


def test_a_typescript_application_compiles_against_the_shipped_types(tsc: Path) -> None:
    compile_with(tsc, "--noEmit", "-p", "tsconfig.consumer.json")


def test_the_shipped_types_are_what_the_jsdoc_says(tsc: Path, tmp_path: Path) -> None:
    compile_with(tsc, "-p", "tsconfig.types.json", "--outDir", str(tmp_path))
    generated = (tmp_path / "tocsin.d.ts").read_text()
    assert (CLIENT / "tocsin.d.ts").read_text() == generated, (
        "service/tocsin/client/tocsin.d.ts is out of date: npm --prefix tests/js run types"
    )


async def test_tocsin_serves_the_types(http: httpx.AsyncClient) -> None:
    response = await http.get("/client/tocsin.d.ts")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/typescript")
    assert response.text == (CLIENT / "tocsin.d.ts").read_text()
