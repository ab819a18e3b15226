"""The one exception type of the data layer."""


class DataError(ValueError):
    """Bad or missing data. The message is one line that names the problem.

    The command line prints it and exits with status 2.
    """
