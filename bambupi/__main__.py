from bambupi.cli import main

raise SystemExit(main())
