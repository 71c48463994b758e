from esrepro.cli import main

raise SystemExit(main())
