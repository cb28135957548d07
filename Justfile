# tocsin: common tasks. `just` lists them.

default:
    @just --list

# Run the service (embedded NATS unless TOCSIN_NATS_URL is set).
run *ARGS:
    uv run tocsin serve {{ARGS}}

# Run the whole test suite.
test *ARGS:
    uv run pytest {{ARGS}}

# Lint and type-check.
lint:
    uv run ruff check .
    uv run ruff format --check .
    uv run mypy

# Regenerate schemas/ from the msgspec structs.
schemas:
    uv run python -m tocsin.contract schemas

# Load scenarios (fanout, native, capacity, storm, publish, all) and their figures.
bench *ARGS:
    uv run tocsin bench {{ARGS}}
