"""The glance panel: OLED screen, three LEDs, a buzzer and a button.

Pure parts (``alarms``, ``screens``) decide what to show; thin adapters (``outputs``, ``hardware``) drive the hardware;
``service.Panel`` ties them to the hub. Importing this package loads no hardware library.
"""
