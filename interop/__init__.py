"""The fixture through the field's own codes: ptychodus, pty-chi and cdtools (tox -e clients)."""
