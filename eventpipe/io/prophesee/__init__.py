"""Prophesee formats: the ``%`` text header (:mod:`.header`) and the word-stream reader
driver (:mod:`.words`) that the DAT, EVT 2.0 and EVT 3.0 readers
(:mod:`eventpipe.io.dat`, :mod:`eventpipe.io.evt2`, :mod:`eventpipe.io.evt3`) build on."""
