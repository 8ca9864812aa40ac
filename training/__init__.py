"""Training package for the Smile filter: runs from the checkout, never installed (its dependencies: the ``[train]`` extra).

Steps, run as ``python -m training <step> [--config PATH]``:

* ``prepare``    detect, align (smilecore.align template) and cache every usable face
* ``direction``  the mean neutral→happy landmark displacement (the smile direction)
* ``classifier`` a small smile classifier; labels UTKFace with it
* ``pairs``      the teacher's donor bank (``--donors``) and a contact sheet (``--sheet N``)
* ``train`` / ``export`` / ``evaluate`` / ``teacher-realism``  the network (see each module)
* ``shade``      adds the mean shading of real smiles to an exported model (contract 2)
* ``realism-regions``  the realism test on each part of the face
* ``mouth`` / ``mouth-attach``  the mouth network (self-supervised mouth completion on real open
  mouths) and putting it inside an exported model, in place of the network's painted mouth

Where things are:

* settings: ``config.toml`` (the one source of values) read once by ``config.load_config``
  into dataclasses; a step's ``main`` passes the parts it needs down;
* data: ``prepare`` (decoding by ``smilecore.decode``), ``landmarks68`` (68-point index groups,
  dlib's predictors), ``dataset`` (crops, labels, on-the-fly samples);
* the teacher: ``teacher`` (targets), ``warp`` (thin-plate spline), ``donors`` (real mouths),
  ``teeth`` (the drawn mouth), ``direction`` and ``geometry`` (how landmarks move);
* the network: ``nets`` (the Mobile UNet), ``losses``, ``train`` (the :class:`~training.train.Trainer`),
  ``schedule`` (stages, LR plateau, EMA), ``checkpoint``, ``export``;
* the mouth: ``mouth_net`` (the mouth frame, the network, the graph piece), ``mouth`` (its
  training), ``mouth_attach`` (into an exported model, and the drawn-mouth baseline back out);
* measuring: ``classifier``, ``identity`` + ``dlib_format`` (dlib's descriptor in PyTorch),
  ``evaluate``, ``realism`` (+ ``realism_table``; judges of other kinds: ``realism_judges``), ``realism_study`` (what ``realism_regions`` and
  ``teacher_realism`` share), ``appearance`` (the shading of real smiles, used by ``shade``).

What the engine also does is done by the engine's functions (``smilecore.network_io`` for the
network input and the contract's blend, ``smilecore.digest`` for checksums, ``smilecore.align``
for the template).  The face photographs live outside the repository (``[paths] data_dir``) and
everything derived from them is cached outside it too (``[paths] cache_dir``).
"""
from smilecore.offline import no_telemetry

no_telemetry()  # (onnxruntime keeps and sends no usage events: smilecore/offline.py)

