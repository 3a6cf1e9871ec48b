# cmake -DHELP2MAN=<help2man> -DTOOL=<tool binary> -DPAGE=<out.1> -P man_page.cmake
# Writes the tool's man page with help2man (which runs TOOL --help and TOOL --version); the
# page's one-line summary is the --help description (the text before "Usage:") up to its
# first ':' or '.'.
execute_process(COMMAND ${TOOL} --help OUTPUT_VARIABLE help RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${TOOL} --help failed (${status})")
endif()
string(FIND "${help}" "Usage:" usage_at)
string(SUBSTRING "${help}" 0 ${usage_at} description)
string(REPLACE "\n" " " description "${description}")
string(REGEX MATCH "^[^.:]*" summary "${description}")
string(STRIP "${summary}" summary)
get_filename_component(folder ${PAGE} DIRECTORY)
file(MAKE_DIRECTORY ${folder})
execute_process(COMMAND ${HELP2MAN} --no-info --section=1 --name=${summary} --output=${PAGE}.tmp ${TOOL}
                RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  file(REMOVE ${PAGE}.tmp)
  message(FATAL_ERROR "help2man failed on ${TOOL} (${status})")
endif()
file(RENAME ${PAGE}.tmp ${PAGE})
