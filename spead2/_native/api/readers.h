/* Native parts of the socket and file readers (cffi cdef: no preprocessor directives).
 * Filled in by the readers; each function here only moves bytes into the kernel. */
