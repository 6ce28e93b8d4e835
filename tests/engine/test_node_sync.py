"""CommandLead: commands applied at a block, the master's told to its listeners first."""

from latentd.engine import commands as c
from latentd.engine.node_sync import CommandLead


def test_a_command_is_applied_lead_blocks_later_and_told_first() -> None:
    lead = CommandLead(5)
    told: list[tuple[int, c.Command]] = []
    lead.listeners.append(lambda block, cmd: told.append((block, cmd)))
    first, second = c.NextSection(), c.GotoSection("off")
    lead.take(10, first)
    lead.take(10, second)
    assert told == [(15, first), (15, second)]
    assert lead.due(14) == []
    assert lead.due(15) == [first, second]  # in the order they came
    assert lead.due(16) == []


def test_a_command_with_a_block_waits_for_it_or_is_late() -> None:
    lead = CommandLead(0)
    early, late = c.NextSection(), c.GotoSection("on")
    lead.take(100, (103, early))
    lead.take(100, (98, late))
    assert lead.late == 1
    assert lead.due(100) == [late]
    assert lead.due(102) == [] and lead.due(103) == [early]
