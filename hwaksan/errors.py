"""The one exception type for problems a user can cause (bad path, bad config, bad image).

The command line turns it into a single line on stderr and a non-zero exit; library callers
can catch it. Its message is one sentence that names the problem and, where useful, the fix.
"""


class HwaksanError(Exception):
    """A user-caused problem with a one-line, self-explanatory message."""
