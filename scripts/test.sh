#!/usr/bin/env bash
# The plugin's own tests, on two xdist workers (a file's tests stay on one worker, so module fixtures
# are built once). One math thread per process: two workers on two cores, no oversubscription.
# Extra arguments go to pytest (e.g. -n 0 for a serial run).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# The end-to-end file builds and runs on two threads beside the other worker: OpenMP threads that sleep
# instead of spinning while they wait lose little on a shared core (spinning ran 2.5x slower under load).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# --no-loadscope-reorder keeps the order of tests/conftest.py (the end-to-end file first); xdist would
# otherwise start the files with most tests first and the full reference build last.
exec python -m pytest tests -n "${MANGAASSIST_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
