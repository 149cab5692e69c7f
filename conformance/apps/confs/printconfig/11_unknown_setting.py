# Unknown names in a config file are ignored; helper imports too.
import os
import sys

workers = 1
some_custom_value = 42
DEBUG = True
