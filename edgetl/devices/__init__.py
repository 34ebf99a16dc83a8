"""Operations on a device over SSH: putting a model there and keeping it running
(:mod:`deploy`), bringing its doubtful frames home (:mod:`harvest`). The transport itself is
:mod:`edgetl.remote`."""
