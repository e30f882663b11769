"""An ML2 mechanism driver that binds every port it is asked to bind.

The test tier runs Neutron without agents (no OVS, no OVN): ML2 would leave ports
unbound and Nova would fail the boot with PortBindingFailed. Neutron's own test drivers
live in its test tree (not installed) and expect agents, so this one binds the first
segment with a generic VIF type; nothing ever carries packets (no data path).
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindEveryPort(api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OTHER,
                {},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return
