"""The ``congruence`` command: one subcommand per job (``main.build_parser``)."""
