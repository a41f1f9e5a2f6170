"""`backchannel run <agent>`: the wrapper that puts a coding CLI in the room with a stable identity."""
