"""``--view`` / ``--video``: event frames with the current label, on screen or to a file.

The viewer runs in the inference thread after each step: it renders the
stream's frame ON/OFF coloured (``eventpipe.render``), scales it up, writes the
current label, score and truth on it, and shows it in an OpenCV window and/or
appends it to a video.  ``opencv-python-headless`` has no GUI: ``--view``
then fails at start with a clear message (``--video`` still works).
"""

from __future__ import annotations

import numpy as np

from eventpipe.render import VideoSink, frames_to_images


class LabelViewer:
    def __init__(self, *, window: bool = False, video: str | None = None, fps: float = 20.0,
                 scale: int = 4, stream=None):
        import cv2

        self.cv2 = cv2
        self.window = window
        self.scale = int(scale)
        self.stream = stream  # show one stream (default: the first seen)
        self.title = "eventpipe"
        self._video = VideoSink(video, fps) if video else None
        self.frames = 0
        if window:
            try:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            except cv2.error as exc:
                raise RuntimeError("--view needs OpenCV with GUI support (opencv-python, not "
                                   "opencv-python-headless) and a display; use --video out.mp4 "
                                   f"instead ({str(exc).strip().splitlines()[-1]})") from None

    def show(self, stream, frame, label: dict | None) -> None:
        if self.stream is None:
            self.stream = stream
        if stream != self.stream:
            return
        img = frames_to_images(np.asarray(frame.cpu() if hasattr(frame, "cpu") else frame))[0]
        img = self.cv2.resize(img, (img.shape[1] * self.scale, img.shape[0] * self.scale),
                              interpolation=self.cv2.INTER_NEAREST)
        if label is not None:
            text = f"{label.get('label')} {label.get('score', 0):.2f}"
            if label.get("truth") is not None:
                text += f"  (truth {label['truth']})"
            self.cv2.putText(img, text, (6, 20), self.cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                             (255, 255, 255), 1, self.cv2.LINE_AA)
        if self._video is not None:
            self._video.write(img)
        if self.window:
            self.cv2.imshow(self.title, img)
            self.cv2.waitKey(1)
        self.frames += 1

    def close(self) -> None:
        if self._video is not None:
            self._video.close()
            self._video = None
        if self.window:
            try:
                self.cv2.destroyWindow(self.title)
            except self.cv2.error:
                pass
