# Thin wrappers: the scripts work without make too.
.PHONY: setup test demo

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh
