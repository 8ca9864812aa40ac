"""Training package for the Smile filter (installed with the ``[train]`` extra).

Steps, run as ``python -m training <step>``:

* ``prepare``    detect, align (smilecore.align template) and cache every usable face
* ``direction``  the mean neutral→happy landmark displacement (the smile direction)
* ``classifier`` a small smile classifier; labels UTKFace with it
* ``pairs``      materialise teacher (input, target, flow, mask) pairs
* ``train`` / ``export`` / ``evaluate``  the network (see training.train etc.)

The face photographs live outside the repository (``[paths] data_dir``) and
everything derived from them is cached outside it too (``[paths] cache_dir``).
"""
