"""Where things are kept: the one owner of the database engine, the schema and its
migrations, and the blob stores behind one interface with the one MD5 check."""
