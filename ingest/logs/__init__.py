"""MTA delivery logs: readers (Postfix, PowerMTA accounting CSV, KumoMTA JSON), each a pure,
streaming function of lines to `LogRecord`s; the writer that counts them into the store; and
the reader of a growing file that survives rotation."""
