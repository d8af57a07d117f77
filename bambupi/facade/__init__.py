"""The printer facade: the box speaks the printer's own protocols, so every other app in the home uses the box.

A Bambu printer serves about three local MQTT clients and one or two camera clients. The box holds one of each;
with ``[facade]`` on, other apps (ha-bambulab, ESP32 screens, scripts built on bambulabs_api) connect to the box as
if it were the printer: host = the box, serial = the printer's, access code = the facade's own.

- :mod:`~bambupi.facade.component`: the component (MQTT endpoint, reports out, requests in, live settings).
- :mod:`~bambupi.facade.requests`: what is answered, passed on, or refused (pure rules).
- :mod:`~bambupi.facade.camera`: the port-6000 camera endpoint fed from the FrameHub.
- :mod:`~bambupi.facade.certificate`: the box's own self-signed TLS certificate.
"""
