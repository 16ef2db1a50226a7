#!/usr/bin/env bash
# The plugin's own tests, on two xdist workers (a file's tests stay on one worker, so module fixtures
# are built once). One math thread per process: two workers on two cores, no oversubscription.
# Extra arguments go to pytest (e.g. -n 0 for a serial run).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python -m pytest tests -n "${MANGAASSIST_TEST_WORKERS:-2}" --dist loadfile "$@"
