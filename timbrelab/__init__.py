"""timbrelab: multi-instrument music transcription, taught.

Every chapter of the book imports its models, losses, decoders and data from here.
"""

__version__ = "0.1.0"
