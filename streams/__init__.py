"""The Faust worker: agents that project completion events and resolve pipeline commands."""
