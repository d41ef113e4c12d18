"""eventpipe: event-camera ingestion, binning and streaming action recognition."""

from eventpipe.events import EVENT_DTYPE, empty_events, make_events

__version__ = "0.1.0"
__all__ = ["EVENT_DTYPE", "empty_events", "make_events", "__version__"]
