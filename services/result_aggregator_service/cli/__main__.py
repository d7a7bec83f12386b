from result_aggregator_service.cli.main import main

main()
