"""A simulated Bambu Lab printer (``bambupi sim``): MQTT over TLS with the printer's auth, topics and reports.

:class:`Simulator` is the entry point; ``Simulator(...).printer`` is the :class:`SimulatedPrinter` that tests drive.
"""

from bambupi.sim.broker import Broker
from bambupi.sim.printer import SimulatedPrinter
from bambupi.sim.scenarios import SCENARIOS
from bambupi.sim.simulator import Simulator

__all__ = ["SCENARIOS", "Broker", "SimulatedPrinter", "Simulator"]
