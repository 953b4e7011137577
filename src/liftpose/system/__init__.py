"""The image -> 2-D -> 3-D system: photos, videos and keypoint files in, 3-D poses and pictures out.

``liftpose-infer`` (:mod:`liftpose.infer`) is its command line; the parts, in the order a
frame meets them:

* :mod:`~liftpose.system.media` reads images, folders of images and videos (OpenCV), with each
  frame's time and size.
* :mod:`~liftpose.system.readers` reads 2-D keypoint files (``.npz``, COCO results json,
  OpenPose json folders, AlphaPose json) into the same per-frame people.
* :mod:`~liftpose.system.detectors`: the 2-D detector interface (an RGB image -> people, each
  ``(K, 2)`` pixels, ``(K,)`` confidences and a box), MediaPipe BlazePose, and liftpose's own
  heatmap networks run top-down on person boxes.
* :mod:`~liftpose.system.tracking`: one track per person across frames (box IoU).
* :mod:`~liftpose.system.joints`: keypoint layouts and their maps to Human3.6M-17.
* :mod:`~liftpose.system.timebase`: gap filling of low-confidence joints and resampling to the
  lifter's frame rate.
* :mod:`~liftpose.system.lifting`: a lifter checkpoint, and the one function that lifts a
  sequence.
* :mod:`~liftpose.system.draw` and :mod:`~liftpose.system.writers`: the 2-D overlay, the 3-D
  animation, ``poses.npz``/``poses.json``, written to temporary names and renamed.
* :mod:`~liftpose.system.pipeline` joins them, with a progress bar and per-stage frames/s.

``joints``, ``readers``, ``media``, ``tracking``, ``timebase``, ``draw`` and ``writers`` import
no training code, so the data code can use them; ``detectors``, ``lifting`` and ``pipeline``
load checkpoints.
"""
