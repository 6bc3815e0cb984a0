from vrscope.cli import main

raise SystemExit(main())
