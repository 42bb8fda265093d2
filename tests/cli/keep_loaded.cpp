// Preloaded into the sanitizer job's tests under mpirun: dlclose does nothing, so the Open MPI
// components that MPI_Init opens and closes again stay mapped and LeakSanitizer can name the
// library of every frame; tests/cli/lsan.supp then suppresses Open MPI's leaks by library.

extern "C" int dlclose(void*) { return 0; }
