"""What pcnode does with its library: the jobs behind the command line, the demo, the
paper's experiments and billiards planning, with their progress bars, figures and
reports.

The library below (model, forcing, rollout, evaluate, train, data, series, ...) never
prints and draws nothing; these modules do both, and the command line (`pcnode.cli`)
only parses arguments and calls one function here per subcommand.
"""
