"""The bridge between the engine and the editor plug-ins (import package ``smile_cli.bridge``).

* :mod:`.worker`: ``smile worker``, the long-lived process the plug-ins talk to
  (docs/worker-protocol.md);
* :mod:`.install`: ``smile install-plugin gimp|krita``, which copies a plug-in (and the shared
  protocol client ``plugins/common/smile_client.py``) into the editor's folder;
* :mod:`.kritarc`: enabling the Krita plug-in in ``kritarc``;
* :mod:`.plugin_dirs`: where GIMP 3 and Krita look for plug-ins on each platform.
"""
