"""The home broker's bridge: each printer's state, events and camera pictures on the home's MQTT broker, with Home
Assistant's MQTT discovery, and commands from it (docs/home-assistant.md)."""
