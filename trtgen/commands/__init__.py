"""What the ``trtgen`` command runs: one module per command, each a plain function returning a report."""
