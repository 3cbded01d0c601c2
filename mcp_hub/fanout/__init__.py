"""Messages between the replicas of one hub: in this process alone, or over Redis pub/sub (issue 12 §4)."""

from mcp_hub.fanout.bus import Bus, LocalBus, RedisBus, Topic, bus_for

__all__ = ["Bus", "LocalBus", "RedisBus", "Topic", "bus_for"]
