"""Frame I/O, public data set layouts, the phantom generator, stores and data modules."""
